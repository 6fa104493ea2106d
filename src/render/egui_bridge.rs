//! The one file that knows both egui's wgpu integration and this renderer: a paint callback
//! that raycasts a volume straight into egui's render pass (no offscreen copy).
//!
//! The window installs the GPU resources once ([`install`]); each frame the 3D view hands a
//! [`VolumeView`] to [`volume_callback`]. The volume is uploaded once per `volume_id`.

use super::{
    upload_volume, Camera, RaycastParams, Raycaster, StandardView, TransferFunction, VolumeTexture,
};
use crate::volume::Volume;
use nalgebra::Point3;
use std::sync::Arc;

/// What the 3D view shows this frame.
#[derive(Clone)]
pub struct VolumeView {
    /// Identifies the volume: a new id uploads a new texture.
    pub volume_id: u64,
    pub volume: Arc<dyn AsRef<Volume<f32>> + Send + Sync>,
    /// A transfer-function preset name (`ct-bone`, `ct-soft`, `mr-t1`, …).
    pub preset: &'static str,
    /// Orbit from the anterior view, degrees.
    pub yaw_deg: f64,
    pub pitch_deg: f64,
}

struct Resources {
    raycaster: Raycaster,
    texture: Option<(u64, VolumeTexture)>,
    transfer: Option<(&'static str, TransferFunction)>,
    failed_volume: Option<u64>,
}

/// Creates the raycaster in egui's renderer (call once, when the window starts).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let raycaster = Raycaster::new(&render_state.device, render_state.target_format);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(Resources {
            raycaster,
            texture: None,
            transfer: None,
            failed_volume: None,
        });
}

struct Callback {
    view: VolumeView,
    rect: egui::Rect,
}

/// A paint callback drawing `view` into `rect` of the current egui frame.
pub fn volume_callback(rect: egui::Rect, view: VolumeView) -> egui::PaintCallback {
    egui_wgpu::Callback::new_paint_callback(rect, Callback { view, rect })
}

fn camera_for(volume: &Volume<f32>, view: &VolumeView, aspect: f64) -> Camera {
    let g = volume.geometry();
    let [nx, ny, nz] = g.dims.map(|d| d as f64 - 0.5);
    let mut corners = Vec::with_capacity(8);
    for i in [-0.5, nx] {
        for j in [-0.5, ny] {
            for k in [-0.5, nz] {
                corners.push(g.world_from_voxel_point([i, j, k]));
            }
        }
    }
    let (mut lo, mut hi) = (
        Point3::new(f64::INFINITY, f64::INFINITY, f64::INFINITY),
        Point3::new(f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for c in &corners {
        for a in 0..3 {
            lo[a] = lo[a].min(c[a]);
            hi[a] = hi[a].max(c[a]);
        }
    }
    let centre = nalgebra::center(&lo, &hi);
    let mut camera = Camera::standard(StandardView::Anterior, centre, (hi - lo).norm());
    camera.orbit(view.yaw_deg, view.pitch_deg);
    camera.fit_to_bounds(lo, hi, aspect);
    camera
}

impl egui_wgpu::CallbackTrait for Callback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<Resources>() else {
            return Vec::new();
        };
        let volume = (*self.view.volume).as_ref();
        let fresh = res.texture.as_ref().map(|(id, _)| *id) != Some(self.view.volume_id);
        if fresh && res.failed_volume != Some(self.view.volume_id) {
            match upload_volume(device, queue, volume) {
                Ok(t) => res.texture = Some((self.view.volume_id, t)),
                Err(e) => {
                    tracing::warn!("3D view: cannot upload the volume: {e}");
                    res.failed_volume = Some(self.view.volume_id);
                    res.texture = None;
                }
            }
        }
        if res.transfer.as_ref().map(|(name, _)| *name) != Some(self.view.preset) {
            res.transfer = TransferFunction::preset(self.view.preset)
                .ok()
                .map(|t| (self.view.preset, t));
        }
        let (Some((_, texture)), Some((_, transfer))) = (&res.texture, &res.transfer) else {
            return Vec::new();
        };
        let ppp = screen.pixels_per_point;
        let width = (self.rect.width() * ppp).round().max(1.0) as u32;
        let height = (self.rect.height() * ppp).round().max(1.0) as u32;
        let camera = camera_for(volume, &self.view, width as f64 / height as f64);
        let params = RaycastParams::new(texture, transfer, camera);
        res.raycaster.prepare(device, queue, &params, width, height);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<Resources>() else {
            return;
        };
        if res.texture.is_some() && res.transfer.is_some() {
            res.raycaster.paint(render_pass);
        }
    }
}
