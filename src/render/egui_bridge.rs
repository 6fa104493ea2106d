//! The one file that knows both egui's wgpu integration and this renderer: a paint callback
//! that draws the 3D view (meshes and a raycast volume) into egui's render pass. A volume
//! alone is raycast straight into it; with meshes, both are drawn offscreen first (the
//! volume's rays stop at the meshes' depth) and the picture is laid onto the viewport.
//!
//! The window installs the GPU resources once ([`install`]); each frame the 3D view hands a
//! [`VolumeView`] to [`volume_callback`]. The volume is uploaded once per `volume_id`, the
//! meshes once per [`MeshScene::key`].

use super::camera::volume_bounds_world;
use super::four_view::SceneView;
use super::gpu::cleared_colour_pass;
use super::picture::{picture_bind_group, picture_pipeline, picture_texture};
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

/// A raycaster and mesh viewer with the volume they last uploaded: what the 3D view owns, and
/// what the four-view owns a second set of.
struct SceneResources {
    raycaster: Raycaster,
    texture: Option<(u64, VolumeTexture)>,
    failed_volume: Option<u64>,
    meshes: ViewportMeshes,
}

impl SceneResources {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        Self {
            raycaster: Raycaster::new(device, format),
            texture: None,
            failed_volume: None,
            meshes: ViewportMeshes::new(device, format),
        }
    }

    /// Uploads what `view` needs (the volume once per id; a failed upload is logged once under
    /// `who` and not retried) and records its drawing for a `size` viewport seen by `camera`:
    /// with meshes, meshes and volume into the mesh viewer's offscreen picture; otherwise the
    /// raycaster's uniforms for drawing straight into the pass [`Self::paint`] gets.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        view: &VolumeView,
        camera: Camera,
        size: [u32; 2],
        who: &str,
    ) {
        let volume = (*view.volume).as_ref();
        if let Some(scene) = view.meshes.as_ref().filter(|_| view.draws_meshes()) {
            let list: Vec<(&TriMesh, Rgba)> =
                scene.meshes.iter().map(|(m, c)| (&**m, *c)).collect();
            self.meshes.set_meshes(device, scene.key, &list);
        }
        let fresh = self.texture.as_ref().map(|(id, _)| *id) != Some(view.volume_id);
        if view.show_volume && fresh && self.failed_volume != Some(view.volume_id) {
            match upload_volume(device, queue, volume) {
                Ok(t) => self.texture = Some((view.volume_id, t)),
                Err(e) => {
                    tracing::warn!("{who}: cannot upload the volume: {e}");
                    self.failed_volume = Some(view.volume_id);
                    self.texture = None;
                }
            }
        }
        let texture = self
            .texture
            .as_ref()
            .filter(|(id, _)| view.show_volume && *id == view.volume_id)
            .map(|(_, t)| t);
        let params = texture.map(|texture| {
            let mut params = RaycastParams::new(texture, &view.transfer, camera);
            params.mode = view.mode;
            params.window = view.window;
            params.clip_box_world = view.clip_box_world;
            params
        });
        if view.draws_meshes() {
            let volume = params.as_ref().map(|p| (&mut self.raycaster, p));
            self.meshes.render_with_volume(
                device,
                queue,
                encoder,
                &SceneView::new(camera, size),
                volume,
            );
        } else if let Some(params) = &params {
            self.raycaster
                .prepare(device, queue, params, size[0], size[1]);
        }
    }

    /// Draws what [`Self::prepare`] recorded for `view`.
    fn paint(&self, pass: &mut wgpu::RenderPass<'_>, view: &VolumeView) {
        // With meshes the offscreen picture holds the volume too.
        if view.draws_meshes() {
            self.meshes.paint(pass);
            return;
        }
        let uploaded = self.texture.as_ref().map(|(id, _)| *id) == Some(view.volume_id);
        if view.show_volume && uploaded {
            self.raycaster.paint(pass);
        }
    }
}

impl VolumeView {
    fn draws_meshes(&self) -> bool {
        self.meshes.as_ref().is_some_and(|m| !m.meshes.is_empty())
    }
}

/// Creates the raycaster and mesh viewer in egui's renderer (call once, when the window starts).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let scene = SceneResources::new(&render_state.device, render_state.target_format);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(scene);
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
    let [lo, hi] = volume_bounds_world(volume);
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
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<SceneResources>() else {
            return Vec::new();
        };
        let volume = (*self.view.volume).as_ref();
        let ppp = screen.pixels_per_point;
        let width = (self.rect.width() * ppp).round().max(1.0) as u32;
        let height = (self.rect.height() * ppp).round().max(1.0) as u32;
        let camera = camera_for(volume, &self.view, width as f64 / height as f64);
        res.prepare(
            device,
            queue,
            encoder,
            &self.view,
            camera,
            [width, height],
            "3D view",
        );
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        if let Some(res) = resources.get::<SceneResources>() {
            res.paint(render_pass, &self.view);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Four-view projection (pyramid / Pepper's-ghost displays), kept apart from the 3D view's
// resources above: its own volume texture, raycaster and mesh viewer. Each cell's scene is
// drawn upright into an offscreen picture of the cell's size (in the callback's `prepare`,
// submitted at once, so the one raycaster and mesh viewer serve all four cells in turn), then
// `paint` lays the picture onto the cell turned by its quarter turns
// (shaders/four_view_cell.wgsl). The cells' places and turns come from
// `four_view::pyramid_layout`.

struct CellPicture {
    size: [u32; 2],
    view: wgpu::TextureView,
    bind_group: wgpu::BindGroup,
}

struct FourViewResources {
    scene: SceneResources,
    cells: [Option<CellPicture>; 4],
    turn_pipeline: wgpu::RenderPipeline,
    turn_layout: wgpu::BindGroupLayout,
    format: wgpu::TextureFormat,
}

/// Creates the four-view's GPU resources in egui's renderer (call once, when the window starts).
pub fn install_four_view(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    let format = render_state.target_format;
    // The cell picture is opaque (drawn on black): it replaces what is under it.
    let (turn_layout, turn_pipeline) = picture_pipeline(
        device,
        "four-view cell",
        wgpu::ShaderModuleDescriptor {
            label: Some("four_view_cell.wgsl"),
            source: wgpu::ShaderSource::Wgsl(
                include_str!("../../shaders/four_view_cell.wgsl").into(),
            ),
        },
        format,
        None,
    );
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(FourViewResources {
            scene: SceneResources::new(device, format),
            cells: [None, None, None, None],
            turn_pipeline,
            turn_layout,
            format,
        });
}

impl FourViewResources {
    fn ensure_cell(&mut self, device: &wgpu::Device, cell: usize, size: [u32; 2]) {
        if self.cells[cell].as_ref().is_some_and(|c| c.size == size) {
            return;
        }
        let view = picture_texture(device, "four-view cell picture", size, self.format)
            .create_view(&Default::default());
        let bind_group = picture_bind_group(device, "four-view cell", &self.turn_layout, &view);
        self.cells[cell] = Some(CellPicture {
            size,
            view,
            bind_group,
        });
    }

    /// Draws `view` upright into cell `cell`'s picture and submits it: as the 3D view does,
    /// meshes and the volume together in the mesh viewer's picture (rays stopped at the
    /// meshes), or the volume alone.
    fn render_cell(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        cell: usize,
        size: [u32; 2],
        view: &VolumeView,
    ) {
        self.ensure_cell(device, cell, size);
        let volume = (*view.volume).as_ref();
        let camera = camera_for(volume, view, f64::from(size[0]) / f64::from(size[1]));
        let mut encoder = device.create_command_encoder(&Default::default());
        self.scene
            .prepare(device, queue, &mut encoder, view, camera, size, "four-view");
        let Some(picture) = &self.cells[cell] else {
            return;
        };
        {
            let mut pass = cleared_colour_pass(&mut encoder, "four-view cell", &picture.view);
            self.scene.paint(&mut pass, view);
        }
        // Submitted now: the next cell rewrites the same raycaster's uniforms.
        queue.submit([encoder.finish()]);
    }
}

struct FourViewCell {
    cell: usize,
    quarter_turns: u32,
    view: VolumeView,
    rect: egui::Rect,
}

/// A paint callback drawing one four-view cell into `rect`: `view` (whose yaw already holds
/// the cell's orbit) rendered upright, laid on turned `quarter_turns` counter-clockwise.
/// `cell` (0..4) names the cell's picture; each cell of a frame needs its own.
pub fn four_view_cell_callback(
    rect: egui::Rect,
    cell: usize,
    quarter_turns: u32,
    view: VolumeView,
) -> egui::PaintCallback {
    egui_wgpu::Callback::new_paint_callback(
        rect,
        FourViewCell {
            cell: cell % 4,
            quarter_turns: quarter_turns % 4,
            view,
            rect,
        },
    )
}

impl egui_wgpu::CallbackTrait for FourViewCell {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<FourViewResources>() else {
            return Vec::new();
        };
        let ppp = screen.pixels_per_point;
        let size = [self.rect.width(), self.rect.height()]
            .map(|points| (points * ppp).round().clamp(1.0, 4096.0) as u32);
        res.render_cell(device, queue, self.cell, size, &self.view);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<FourViewResources>() else {
            return;
        };
        let Some(picture) = &res.cells[self.cell] else {
            return;
        };
        render_pass.set_pipeline(&res.turn_pipeline);
        render_pass.set_bind_group(0, &picture.bind_group, &[]);
        let first = 3 * self.quarter_turns;
        render_pass.draw(first..first + 3, 0..1);
    }
}
