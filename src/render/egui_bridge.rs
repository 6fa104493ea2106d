//! The one file that knows both egui's wgpu integration and this renderer: a paint callback
//! that draws the 3D view (meshes and a raycast volume) into egui's render pass. A volume
//! alone is raycast straight into it; with meshes, both are drawn offscreen first (the
//! volume's rays stop at the meshes' depth) and the picture is laid onto the viewport.
//!
//! The window installs the GPU resources once ([`install`]); each frame the 3D view hands a
//! [`VolumeView`] to [`volume_callback`]. The volume is uploaded once per `volume_id`, the
//! meshes once per [`MeshScene::key`].

use super::four_view::SceneView;
use super::viewport_meshes::ViewportMeshes;
use super::{
    upload_volume, Camera, RaycastParams, Raycaster, RenderMode, StandardView, TransferFunction,
    VolumeTexture,
};
use crate::volume::{Rgba, TriMesh, Volume};
use nalgebra::Point3;
use std::sync::Arc;

/// Surfaces to draw in the 3D view, each in its colour (alpha = opacity).
#[derive(Clone)]
pub struct MeshScene {
    /// Changes whenever the meshes or their colours do: a new key uploads them again.
    pub key: u64,
    pub meshes: Vec<(Arc<TriMesh>, Rgba)>,
}

/// What the 3D view shows this frame.
#[derive(Clone)]
pub struct VolumeView {
    /// Identifies the volume: a new id uploads a new texture.
    pub volume_id: u64,
    /// Frames the camera (its bounds) and, when [`Self::show_volume`], is raycast.
    pub volume: Arc<dyn AsRef<Volume<f32>> + Send + Sync>,
    pub transfer: TransferFunction,
    pub mode: RenderMode,
    /// MIP/MinIP grey window in image units (low, high); `None` = the whole value range.
    pub window: Option<(f32, f32)>,
    /// Only this world box (LPS mm, min and max corners) of the volume is drawn.
    pub clip_box_world: Option<[Point3<f64>; 2]>,
    pub show_volume: bool,
    /// Drawn first; the volume's rays stop at their surfaces and it blends over them.
    pub meshes: Option<Arc<MeshScene>>,
    /// Orbit from the anterior view, degrees.
    pub yaw_deg: f64,
    pub pitch_deg: f64,
}

struct Resources {
    raycaster: Raycaster,
    texture: Option<(u64, VolumeTexture)>,
    failed_volume: Option<u64>,
    meshes: ViewportMeshes,
}

/// Creates the raycaster and mesh viewer in egui's renderer (call once, when the window starts).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    let raycaster = Raycaster::new(device, render_state.target_format);
    let meshes = ViewportMeshes::new(device, render_state.target_format);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(Resources {
            raycaster,
            texture: None,
            failed_volume: None,
            meshes,
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

/// World bounding box (LPS mm) of a volume's voxels, outer faces included.
pub fn volume_bounds_world(volume: &Volume<f32>) -> [Point3<f64>; 2] {
    let g = volume.geometry();
    let [nx, ny, nz] = g.dims.map(|d| d as f64 - 0.5);
    let (mut lo, mut hi) = (
        Point3::new(f64::INFINITY, f64::INFINITY, f64::INFINITY),
        Point3::new(f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for i in [-0.5, nx] {
        for j in [-0.5, ny] {
            for k in [-0.5, nz] {
                let c = g.world_from_voxel_point([i, j, k]);
                for a in 0..3 {
                    lo[a] = lo[a].min(c[a]);
                    hi[a] = hi[a].max(c[a]);
                }
            }
        }
    }
    [lo, hi]
}

fn camera_for(volume: &Volume<f32>, view: &VolumeView, aspect: f64) -> Camera {
    let [lo, hi] = volume_bounds_world(volume);
    let centre = nalgebra::center(&lo, &hi);
    let mut camera = Camera::standard(StandardView::Anterior, centre, (hi - lo).norm());
    camera.orbit(view.yaw_deg, view.pitch_deg);
    camera.fit_to_bounds(lo, hi, aspect);
    camera
}

impl Callback {
    fn draws_meshes(&self) -> bool {
        self.view
            .meshes
            .as_ref()
            .is_some_and(|m| !m.meshes.is_empty())
    }
}

impl egui_wgpu::CallbackTrait for Callback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<Resources>() else {
            return Vec::new();
        };
        let volume = (*self.view.volume).as_ref();
        let ppp = screen.pixels_per_point;
        let width = (self.rect.width() * ppp).round().max(1.0) as u32;
        let height = (self.rect.height() * ppp).round().max(1.0) as u32;
        let camera = camera_for(volume, &self.view, width as f64 / height as f64);

        let scene_view = SceneView::new(camera, [width, height]);
        if let Some(scene) = self.view.meshes.as_ref().filter(|_| self.draws_meshes()) {
            let meshes: Vec<(&TriMesh, Rgba)> =
                scene.meshes.iter().map(|(m, c)| (&**m, *c)).collect();
            res.meshes.set_meshes(device, scene.key, &meshes);
        }

        let fresh = res.texture.as_ref().map(|(id, _)| *id) != Some(self.view.volume_id);
        if self.view.show_volume && fresh && res.failed_volume != Some(self.view.volume_id) {
            match upload_volume(device, queue, volume) {
                Ok(t) => res.texture = Some((self.view.volume_id, t)),
                Err(e) => {
                    tracing::warn!("3D view: cannot upload the volume: {e}");
                    res.failed_volume = Some(self.view.volume_id);
                    res.texture = None;
                }
            }
        }
        let texture = res
            .texture
            .as_ref()
            .filter(|(id, _)| self.view.show_volume && *id == self.view.volume_id)
            .map(|(_, t)| t);
        let params = texture.map(|texture| {
            let mut params = RaycastParams::new(texture, &self.view.transfer, camera);
            params.mode = self.view.mode;
            params.window = self.view.window;
            params.clip_box_world = self.view.clip_box_world;
            params
        });
        if self.draws_meshes() {
            let volume = params.as_ref().map(|p| (&mut res.raycaster, p));
            res.meshes
                .render_with_volume(device, queue, encoder, &scene_view, volume);
        } else if let Some(params) = &params {
            res.raycaster.prepare(device, queue, params, width, height);
        }
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
        // With meshes the offscreen picture holds the volume too.
        if self.draws_meshes() {
            res.meshes.paint(render_pass);
            return;
        }
        let uploaded = res.texture.as_ref().map(|(id, _)| *id) == Some(self.view.volume_id);
        if self.view.show_volume && uploaded {
            res.raycaster.paint(render_pass);
        }
    }
}
