//! The planning report's 3D pictures drawn by the real renderer offscreen (the mesh viewer
//! for the printed model, the raycaster for the volume) when a GPU adapter exists (Mesa's
//! lavapipe counts); the document's CPU drawing otherwise. Each caption says which drew it.

use crate::document::project::Project;
use crate::export::report::ReportImage;
use crate::render::{
    render_image, upload_volume, volume_bounds_world, Camera, GpuContext, MeshRenderer,
    OffscreenTarget, RaycastParams, Raycaster, RgbaImage, SceneView, StandardView,
    TransferFunction,
};
use crate::volume::{Modality, Rgba, TriMesh};
use nalgebra::Point3;

/// Side of the square 3D pictures, pixels (the CPU slices are 512 on the long side too).
const PICTURE_PX: u32 = 512;
/// Parts without a print profile are drawn in this grey (as the CPU picture does).
const PART_GREY: Rgba = Rgba::rgb(220, 220, 220);

/// Which renderer drew the report's 3D pictures.
#[derive(Debug, Clone, PartialEq)]
pub enum Drawn {
    /// The GPU renderer on this adapter.
    Gpu(String),
    /// The CPU picture, and why the GPU was not used.
    Cpu(String),
}

/// All the report's pictures: the CPU slices, then the model and volume drawn on the GPU
/// when one is available (else the CPU model picture).
pub fn report_pictures(project: &Project) -> (Vec<ReportImage>, Drawn) {
    match GpuContext::headless() {
        Ok(gpu) => {
            let adapter = gpu.describe();
            match gpu_pictures(&gpu, project, &adapter) {
                Ok(pictures) => {
                    // The slices alone: the model is the GPU's.
                    let slices_only = Project {
                        meshes: Vec::new(),
                        ..project.clone()
                    };
                    let mut images = slices_only.report_pictures();
                    images.extend(pictures);
                    (images, Drawn::Gpu(adapter))
                }
                Err(e) => {
                    tracing::warn!("report: GPU pictures failed, drawing on the CPU: {e}");
                    (cpu_pictures(project), Drawn::Cpu(e))
                }
            }
        }
        Err(e) => (cpu_pictures(project), Drawn::Cpu(e.to_string())),
    }
}

fn cpu_pictures(project: &Project) -> Vec<ReportImage> {
    let mut images = project.report_pictures();
    for image in &mut images {
        if image.caption.starts_with("Printed model") {
            image
                .caption
                .push_str("; drawn on the CPU (no GPU adapter)");
        }
    }
    images
}

fn gpu_pictures(
    gpu: &GpuContext,
    project: &Project,
    adapter: &str,
) -> Result<Vec<ReportImage>, String> {
    let mut images = Vec::new();
    let parts: Vec<(&TriMesh, Rgba)> = project
        .meshes
        .iter()
        .map(|m| {
            let color = m.profile.as_ref().map(|p| p.color).unwrap_or(PART_GREY);
            (&*m.mesh, color)
        })
        .collect();
    if let Some(picture) = model_picture(gpu, &parts)? {
        images.push(ReportImage {
            caption: format!(
                "Printed model, seen from the front (print colours); GPU mesh viewer on {adapter}"
            ),
            png: encode_png(&picture)?,
        });
    }
    let base = project
        .volumes
        .iter()
        .find(|v| v.role == crate::document::project::VolumeRole::Fixed)
        .or(project.volumes.first());
    if let Some(base) = base {
        let ct = base.image.meta.modality == Modality::Ct;
        let preset = crate::ui::view3d::default_preset(ct);
        let picture = volume_picture(gpu, &base.image.volume, preset)?;
        images.push(ReportImage {
            caption: format!(
                "{}, 3D from the front ({preset} transfer function); GPU raycaster on {adapter}",
                base.name
            ),
            png: encode_png(&picture)?,
        });
    }
    Ok(images)
}

/// The parts from the front, framed on their bounds; `None` without parts.
fn model_picture(
    gpu: &GpuContext,
    parts: &[(&TriMesh, Rgba)],
) -> Result<Option<RgbaImage>, String> {
    let mut lo = Point3::new(f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut hi = -lo;
    for (mesh, _) in parts {
        if let Some((a, b)) = mesh.bounds_mm() {
            for axis in 0..3 {
                lo[axis] = lo[axis].min(f64::from(a[axis]));
                hi[axis] = hi[axis].max(f64::from(b[axis]));
            }
        }
    }
    if !(lo.x <= hi.x) {
        return Ok(None);
    }
    let target = OffscreenTarget::new(gpu, PICTURE_PX, PICTURE_PX).map_err(|e| e.to_string())?;
    let mut renderer = MeshRenderer::new(
        &gpu.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    renderer.set_meshes(&gpu.device, parts);
    let camera = framed(lo, hi);
    renderer
        .render_offscreen(gpu, &target, &SceneView::new(camera, [PICTURE_PX; 2]))
        .map_err(|e| e.to_string())?;
    target.read_rgba(gpu).map(Some).map_err(|e| e.to_string())
}

fn volume_picture(
    gpu: &GpuContext,
    volume: &crate::volume::Volume<f32>,
    preset: &str,
) -> Result<RgbaImage, String> {
    let texture = upload_volume(&gpu.device, &gpu.queue, volume).map_err(|e| e.to_string())?;
    let transfer = TransferFunction::preset(preset).map_err(|e| e.to_string())?;
    let [lo, hi] = volume_bounds_world(volume);
    let params = RaycastParams::new(&texture, &transfer, framed(lo, hi));
    let mut raycaster = Raycaster::new(&gpu.device, OffscreenTarget::COLOR_FORMAT);
    render_image(gpu, &mut raycaster, &params, [PICTURE_PX; 2]).map_err(|e| e.to_string())
}

/// An anterior camera that fits the box `lo..hi` (LPS mm) in a square picture.
fn framed(lo: Point3<f64>, hi: Point3<f64>) -> Camera {
    let centre = nalgebra::center(&lo, &hi);
    let mut camera = Camera::standard(StandardView::Anterior, centre, (hi - lo).norm());
    camera.fit_to_bounds(lo, hi, 1.0);
    camera
}

fn encode_png(picture: &RgbaImage) -> Result<Vec<u8>, String> {
    let image = image::RgbaImage::from_raw(picture.width, picture.height, picture.pixels.clone())
        .ok_or("the rendered picture has the wrong number of pixels")?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode the picture as PNG: {e}"))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axis-aligned box of side `2 * half` mm around `centre`, faces wound outward.
    fn cube(centre: [f32; 3], half: f32) -> TriMesh {
        let mut positions = Vec::new();
        for k in 0..8 {
            positions.push([
                centre[0] + if k & 1 == 0 { -half } else { half },
                centre[1] + if k & 2 == 0 { -half } else { half },
                centre[2] + if k & 4 == 0 { -half } else { half },
            ]);
        }
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        let indices = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        let mut mesh = TriMesh::new(positions, indices);
        mesh.compute_normals();
        mesh
    }

    #[test]
    fn the_gpu_model_picture_shows_the_part_framed_on_black() {
        let Some(gpu) = crate::render::test_support::gpu_or_skip() else {
            return;
        };
        let part = cube([10.0, -20.0, 5.0], 15.0);
        let red = Rgba::rgb(220, 40, 40);
        let picture = model_picture(&gpu, &[(&part, red)])
            .expect("rendered")
            .expect("a part to draw");
        assert_eq!([picture.width, picture.height], [PICTURE_PX; 2]);
        let centre = picture.pixel(PICTURE_PX / 2, PICTURE_PX / 2);
        assert!(
            centre[0] > 60 && centre[0] > 2 * centre[1].max(centre[2]),
            "the red part fills the middle: {centre:?}"
        );
        assert_eq!(&picture.pixel(2, 2)[..3], &[0, 0, 0], "black around it");
        assert!(model_picture(&gpu, &[]).expect("nothing to do").is_none());
        let png = encode_png(&picture).expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }
}
